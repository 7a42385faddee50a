$ip = request.getLocalIP();
# Traffic IPs in the range 31.44.1.* are hosted in Docklands
if( string.ipmaskMatch( $ip, "31.44.1.0/24" ) ) pool.select( "Docklands Webservers" );
# Traffic IPs in the range 154.76.87.* are hosted in New Jersey
if( string.ipmaskMatch( $ip, "154.76.87.0/24" ) ) pool.select( "New Jersey Webservers" );
